# azd postdeploy hook (Windows): the same as subscribe-blob-events.sh, in PowerShell. Creates or updates the
# Event Grid subscription that drives the `ingest_dump` blob trigger, as the Event Grid blob quickstart does
# (scripts/post-up.ps1): read the Function App's blobs_extension system key with the Azure CLI, then create the
# subscription with it. Safe to run again (the create is a PUT). Run by hand: azd hooks run postdeploy
$ErrorActionPreference = "Stop"

foreach ($tool in @("az", "azd")) {
  if (!(Get-Command $tool -ErrorAction SilentlyContinue)) {
    Write-Error "the $tool command is needed (install it, then run 'az login' and 'azd hooks run postdeploy')"
    exit 1
  }
}

Write-Host "Loading the azd environment..."
foreach ($line in (& azd env get-values)) {
  if ($line -match '^([A-Za-z_][A-Za-z0-9_]*)=(.*)$') {
    [Environment]::SetEnvironmentVariable($matches[1], ($matches[2] -replace '^"|"$'))
  }
}
foreach ($name in @("AZURE_FUNCTION_APP_NAME", "AZURE_RESOURCE_GROUP", "FUNCTION_APP_HOSTNAME", "LAKE_ACCOUNT_ID",
                    "LAKE_CONTAINER", "EVENT_GRID_DEADLETTER_CONTAINER_ID")) {
  if (-not [Environment]::GetEnvironmentVariable($name)) {
    Write-Error "$name is not in the azd environment: run 'azd provision' first"
    exit 1
  }
}

# The host creates the key when it first indexes the blob trigger: allow it a few minutes after a deploy.
$key = ""
for ($attempt = 1; $attempt -le 20; $attempt++) {
  $key = (az functionapp keys list --name $env:AZURE_FUNCTION_APP_NAME --resource-group $env:AZURE_RESOURCE_GROUP `
          --query "systemKeys.blobs_extension" --output tsv 2>$null)
  if ($key) { break }
  Write-Host "Waiting for the blobs_extension key of $($env:AZURE_FUNCTION_APP_NAME) (attempt $attempt of 20)..."
  Start-Sleep -Seconds 15
}
if (-not $key) {
  Write-Error "no blobs_extension key on $($env:AZURE_FUNCTION_APP_NAME) after 5 minutes: is ingest_dump deployed? (az functionapp function list)"
  exit 1
}

# The quickstart quotes the URL for az on Windows: its '&' would otherwise split the command.
$endpoint = '"https://' + $env:FUNCTION_APP_HOSTNAME + '/runtime/webhooks/blobs?functionName=Host.Functions.ingest_dump&code=' + $key + '"'

# Same filter, retry policy and identity dead-lettering as the posix script (see the comments there).
az eventgrid event-subscription create `
  --name ingest-dump `
  --source-resource-id $env:LAKE_ACCOUNT_ID `
  --endpoint-type webhook `
  --endpoint $endpoint `
  --included-event-types Microsoft.Storage.BlobCreated `
  --subject-begins-with "/blobServices/default/containers/$($env:LAKE_CONTAINER)/blobs/raw/" `
  --advanced-filter data.api StringIn PutBlob PutBlockList CopyBlob FlushWithClose `
  --max-events-per-batch 1 `
  --max-delivery-attempts 30 `
  --event-ttl 1440 `
  --deadletter-identity systemassigned `
  --deadletter-identity-endpoint $env:EVENT_GRID_DEADLETTER_CONTAINER_ID `
  --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

Write-Host "Event Grid subscription ingest-dump is in place: dumps landing under $($env:LAKE_CONTAINER)/raw/ trigger ingest_dump."
