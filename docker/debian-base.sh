#!/usr/bin/env bash
# Build (once) and import into buildah a minimal Debian base image made with debootstrap from the
# Debian mirror apt on this machine uses: the image build needs no container registry.
#   docker/debian-base.sh [IMAGE_NAME]     prints the image name it made or found
# The debootstrap tarball is cached under $DEVOPS_METRICS_CACHE (default ~/.cache/devops-metrics) and
# rebuilt once a week, so security updates arrive; buildah keeps the imported image in its own store.
set -euo pipefail

suite="bookworm"
image="${1:-localhost/devops-metrics-debian-base:${suite}}"
cache="${DEVOPS_METRICS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devops-metrics}"
tarball="${cache}/debian-${suite}-minbase.tar"
max_age_days=7

mirror() {
    # The first Debian (non-security) URI in apt's sources, deb822 or one-line format.
    local uri
    uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)"
    if [ -z "$uri" ]; then
        uri="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $2}' | grep -v -- '-security' | head -n 1 || true)"
    fi
    [ -n "$uri" ] || { echo "no Debian mirror in apt's sources" >&2; exit 1; }
    printf '%s\n' "$uri"
}

if [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +"$max_age_days" 2>/dev/null)" ]; then
    mkdir -p "$cache"
    root="$(mktemp -d "${cache}/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    url="$(mirror)"
    echo "debootstrap ${suite} (minbase) from ${url}" >&2
    debootstrap --variant=minbase "$suite" "$root" "$url" >&2
    # The image's apt uses the same mirrors: the distribution, its updates and its security updates.
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$url" "$suite" "$url" "$suite" \
        > "$root/etc/apt/sources.list"
    security="$(grep -hsE '^URIs:.*-security' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | head -n 1 || true)"
    if [ -n "$security" ]; then
        printf 'deb %s %s-security main\n' "$security" "$suite" >> "$root/etc/apt/sources.list"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" --numeric-owner -cf "${tarball}.tmp" .
    mv "${tarball}.tmp" "$tarball"
    buildah rmi "$image" >/dev/null 2>&1 || true
fi

if ! buildah inspect --type image "$image" >/dev/null 2>&1 \
    || [ "$tarball" -nt "${cache}/.imported-$(printf '%s' "$image" | tr '/:' '__')" ]; then
    container="$(buildah from scratch)"
    buildah add "$container" "$tarball" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /bin/bash "$container"
    buildah commit --quiet --rm "$container" "$image" >/dev/null
    touch "${cache}/.imported-$(printf '%s' "$image" | tr '/:' '__')"
fi
printf '%s\n' "$image"
