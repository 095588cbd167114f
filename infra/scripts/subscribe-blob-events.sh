#!/bin/sh
# azd postdeploy hook: create the Event Grid subscription that drives the `ingest_dump` blob trigger.
# The webhook URL carries the Function App's `blobs_extension` system key, which the host creates when the
# code (with its blob trigger) is first deployed. The key is read with the Azure CLI, kept in the azd
# environment (.azure/<env>/.env, git-ignored) as BLOBS_EXTENSION_KEY, and passed to the Bicep as a
# secure parameter on a second `azd provision`. Nothing happens once the subscription exists.
set -eu

if [ "$(azd env get-value EVENT_GRID_SUBSCRIBED 2>/dev/null || true)" = "true" ]; then
  echo "Event Grid subscription for ingest_dump already exists."
  exit 0
fi

if ! command -v az >/dev/null 2>&1; then
  echo "The Azure CLI (az) is needed to read the blobs_extension key: install it, run 'az login', then 'azd hooks run postdeploy'." >&2
  exit 1
fi

app="$(azd env get-value AZURE_FUNCTION_APP_NAME)"
group="$(azd env get-value AZURE_RESOURCE_GROUP)"

key=""
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  key="$(az functionapp keys list --name "$app" --resource-group "$group" \
        --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)"
  [ -n "$key" ] && break
  echo "Waiting for the blobs_extension key of $app (attempt $attempt)..."
  sleep 15
done
if [ -z "$key" ]; then
  echo "No blobs_extension key on $app: is the ingest_dump blob trigger deployed?" >&2
  exit 1
fi

azd env set BLOBS_EXTENSION_KEY "$key" >/dev/null
azd provision --no-prompt
