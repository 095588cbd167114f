// User-assigned managed identities: one for the Function App, one for POS producers (send sale events). Keys are
// never issued; every client authenticates with Entra ID. Store agents have no shared identity: each store gets its
// own, with write access to its own raw/store=<id>/ only, from infra/scripts/store_access.py (docs/security.md).
param location string
param tags object
param resourceToken string

resource func 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-func-${resourceToken}'
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
output posClientId string = pos.properties.clientId
output posPrincipalId string = pos.properties.principalId
