// Event Grid system topic on the lake account, and the subscription that drives the event-based blob trigger
// (`ingest_dump`, source EventGrid, path %LAKE_CONTAINER%/raw/{name}).
//
// The webhook needs the Function App's `blobs_extension` system key, which exists only once the code is
// deployed. It is passed in as a secure parameter (never read with a key-listing function here): the first
// `azd up` creates the topic only; infra/scripts/subscribe-blob-events.sh (azd postdeploy hook) reads the
// key with `az functionapp keys list`, stores it in the azd environment and provisions again.
param location string
param tags object
param resourceToken string
param lakeId string
param lakeContainerName string
param functionAppHostName string
@secure()
@description('The Function App\'s blobs_extension system key. Empty: create the system topic only.')
param blobsExtensionKey string = ''

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-lake-${resourceToken}'
  location: location
  tags: tags
  properties: {
    source: lakeId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource ingestDump 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = if (!empty(blobsExtensionKey)) {
  parent: topic
  name: 'ingest-dump'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionAppHostName}/runtime/webhooks/blobs?functionName=Host.Functions.ingest_dump&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/${lakeContainerName}/blobs/raw/'
      // Only completed writes: a single PUT, a committed block list, a copy, or an ADLS flush with close.
      // A multi-request upload (Put Block ... Put Block List, or DFS append ... flush) fires once.
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.api'
          values: [ 'PutBlob', 'PutBlockList', 'CopyBlob', 'FlushWithClose' ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output topicName string = topic.name
output subscribed bool = !empty(blobsExtensionKey)
