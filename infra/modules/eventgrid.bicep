// Event Grid system topic on the lake account, with what the blob trigger's subscription needs around it:
// a dead-letter container and the topic's own identity to write there, and an alert on dead-lettered events.
//
// The subscription itself (webhook to `ingest_dump`, source EventGrid, path %LAKE_CONTAINER%/raw/{name}) is
// created after the code is deployed, by infra/scripts/subscribe-blob-events.{sh,ps1} (azd postdeploy hook),
// as the Event Grid blob quickstart does: its URL carries the Function App's `blobs_extension` system key,
// which exists only once the blob trigger is deployed. A secret never passes through this template.
param location string
param tags object
param resourceToken string
param lakeId string
@description('The Functions host storage account: the dead-letter container goes there, not into the lake.')
param hostStorageName string
param actionGroupId string

var deadLetterContainerName = 'eventgrid-deadletter'
var roles = {
  // Storage Blob Data Contributor: Event Grid writes each undeliverable event as a blob.
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-lake-${resourceToken}'
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' } // dead-letters with its identity: the host account allows no keys
  properties: {
    source: lakeId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
  resource blob 'blobServices' existing = {
    name: 'default'
    resource deadLetters 'containers' = {
      name: deadLetterContainerName
      properties: { publicAccess: 'None' }
    }
  }
}

resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage::blob::deadLetters.id, topic.id, roles.storageBlobDataContributor)
  scope: hostStorage::blob::deadLetters
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    description: 'Event Grid system topic of the lake: writes BlobCreated events it could not deliver.'
  }
}

// A BlobCreated event that still fails after the subscription's retries (30 attempts within 24 h) is written
// to the dead-letter container and counted here: the dump may never be ingested. Severity 1, stateful (it
// pages once and resolves itself). raise_alerts' IngestFailure sweep independently catches any dump in raw/
// with neither manifest nor quarantine record after ALERT_INGEST_GRACE_MINUTES.
resource deadLettered 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'alert-BlobEventsDeadLettered-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Inventory pipeline: Event Grid dead-lettered BlobCreated events of the lake (a landed dump was never handed to ingest_dump). Look in the ${deadLetterContainerName} container of ${hostStorageName}; runbook: docs/operations.md.'
    severity: 1
    enabled: true
    scopes: [ topic.id ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'deadLettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: [ { actionGroupId: actionGroupId } ]
  }
}

output topicName string = topic.name
output topicId string = topic.id
output deadLetterContainerId string = hostStorage::blob::deadLetters.id
