// User-assigned managed identities: one for the Function App, one for store agents (upload dumps to raw/),
// one for POS producers (send sale events). Keys are never issued; every client authenticates with Entra ID.
param location string
param tags object
param resourceToken string

resource func 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-func-${resourceToken}'
  location: location
  tags: tags
}

resource agent 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-agent-${resourceToken}'
  location: location
  tags: tags
}

resource pos 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-pos-${resourceToken}'
  location: location
  tags: tags
}

output funcId string = func.id
output funcClientId string = func.properties.clientId
output funcPrincipalId string = func.properties.principalId
output agentClientId string = agent.properties.clientId
output agentPrincipalId string = agent.properties.principalId
output posClientId string = pos.properties.clientId
output posPrincipalId string = pos.properties.principalId
