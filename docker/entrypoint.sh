#!/bin/sh
# One image, five commands. ECS task definitions (and docker-compose) pass the first argument:
#   gateway     the HTTP gateway; GATEWAY_WORKERS processes share GATEWAY_PORT (default 8000)
#   consumer    the KCL consumer (MultiLangDaemon, Java) writing to Timestream and New Relic
#   aggregator  the KCL aggregator deriving the DORA metrics
#   rederive    derive the stored metrics again from the event log (after an upgrade that changed a definition)
#   provision   create the stream, tables, secret and DLQ (LocalStack / moto only; in AWS the CDK does it)
# Anything else is executed as given, so `docker run IMAGE python -c ...` still works.
set -eu

command="${1:-gateway}"
[ "$#" -gt 0 ] && shift

case "$command" in
    gateway) exec python -m producer.multiworker "$@" ;;
    consumer) exec python -m consumer "$@" ;;
    aggregator) exec python -m aggregator "$@" ;;
    rederive) exec python -m aggregator.rederive "$@" ;;
    provision) exec python -m devstack.provision "$@" ;;
    *) exec "$command" "$@" ;;
esac
