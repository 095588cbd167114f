#!/bin/sh
# azd postdeploy hook (posix): create or update the Event Grid subscription that drives the `ingest_dump` blob
# trigger, as the Event Grid blob quickstart does (functions-quickstart-python-azd-eventgrid-blob,
# scripts/post-up.sh): read the Function App's `blobs_extension` system key with the Azure CLI and create the
# subscription with it. The key exists only once the code (with its blob trigger) is deployed, which is why
# this runs after `azd deploy` and not in the Bicep; it never leaves this shell (no azd environment value, no
# second `azd provision` inside the hook). Safe to run again: the create is a PUT (create or update).
#
# Windows: subscribe-blob-events.ps1 does the same. Both build their `az` arguments the same way (a test
# compares them). Run by hand: `azd hooks run postdeploy`.
set -eu

for tool in az azd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: the $tool command is needed (install it, then run 'az login' and 'azd hooks run postdeploy')" >&2
    exit 1
  fi
done

echo "Loading the azd environment..."
values="$(azd env get-values)"
while IFS='=' read -r name value; do
  case "$name" in
    ''|*[!A-Za-z0-9_]*) continue ;;  # not a variable name: skip the line
  esac
  value="${value#\"}"
  export "$name=${value%\"}"
done <<EOF
$values
EOF
for name in AZURE_FUNCTION_APP_NAME AZURE_RESOURCE_GROUP FUNCTION_APP_HOSTNAME LAKE_ACCOUNT_ID LAKE_CONTAINER \
            EVENT_GRID_DEADLETTER_CONTAINER_ID; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "error: $name is not in the azd environment: run 'azd provision' first" >&2
    exit 1
  fi
done

# The host creates the key when it first indexes the blob trigger: allow it a few minutes after a deploy.
key=""
attempt=1
while [ "$attempt" -le 20 ]; do
  key="$(az functionapp keys list --name "$AZURE_FUNCTION_APP_NAME" --resource-group "$AZURE_RESOURCE_GROUP" \
        --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)"
  [ -n "$key" ] && break
  echo "Waiting for the blobs_extension key of $AZURE_FUNCTION_APP_NAME (attempt $attempt of 20)..."
  attempt=$((attempt + 1))
  sleep 15
done
if [ -z "$key" ]; then
  echo "error: no blobs_extension key on $AZURE_FUNCTION_APP_NAME after 5 minutes: is ingest_dump deployed? (az functionapp function list)" >&2
  exit 1
fi

endpoint="https://${FUNCTION_APP_HOSTNAME}/runtime/webhooks/blobs?functionName=Host.Functions.ingest_dump&code=${key}"

# Only completed writes under raw/ (a single PUT, a committed block list, a copy, an ADLS flush with close: a
# multi-request upload fires once). 30 delivery attempts within 24 h, then the event is dead-lettered with
# the system topic's identity (the host account takes no keys) and the BlobEventsDeadLettered alert fires.
# `event-subscription create` on the lake account uses its existing system topic; unlike `system-topic
# event-subscription create`, it can dead-letter with the topic's managed identity.
az eventgrid event-subscription create \
  --name ingest-dump \
  --source-resource-id "$LAKE_ACCOUNT_ID" \
  --endpoint-type webhook \
  --endpoint "$endpoint" \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "/blobServices/default/containers/${LAKE_CONTAINER}/blobs/raw/" \
  --advanced-filter data.api StringIn PutBlob PutBlockList CopyBlob FlushWithClose \
  --max-events-per-batch 1 \
  --max-delivery-attempts 30 \
  --event-ttl 1440 \
  --deadletter-identity systemassigned \
  --deadletter-identity-endpoint "$EVENT_GRID_DEADLETTER_CONTAINER_ID" \
  --output none

echo "Event Grid subscription ingest-dump is in place: dumps landing under ${LAKE_CONTAINER}/raw/ trigger ingest_dump."
