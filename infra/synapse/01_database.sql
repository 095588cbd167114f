-- Synapse serverless SQL: the `inventory` database, and how it reads the lake (run once per workspace).
--
-- Placeholders (replace before running; see README.md in this folder):
--   <storage-account>   the lake's storage account (ADLS Gen2), e.g. stinventoryprod
--   <container>         the lake container (app setting LAKE_CONTAINER, default `lake`)
--   <strong-password>   protects the database master key (which protects the credential); keep it in Key Vault
--   <power-bi-readers>  a Microsoft Entra group (or user) whose members build reports
--
-- Access to storage goes through the Synapse workspace's managed identity: grant it the
-- "Storage Blob Data Reader" role on the storage account (or on the container). Nobody needs a key or SAS.
--
-- Run this part connected to the serverless endpoint (<workspace>-ondemand.sql.azuresynapse.net), database
-- `master`. UTF-8 binary collation: the Delta tables' Parquet files hold UTF-8 strings, and with this
-- collation serverless SQL can push string filters down into them.
CREATE DATABASE inventory COLLATE Latin1_General_100_BIN2_UTF8;
GO

-- From here on, connected to the `inventory` database.
USE inventory;
GO

IF NOT EXISTS (SELECT * FROM sys.symmetric_keys WHERE name = '##MS_DatabaseMasterKey##')
    CREATE MASTER KEY ENCRYPTION BY PASSWORD = '<strong-password>';
GO

-- The workspace's managed identity reads the files for whoever queries the views.
IF NOT EXISTS (SELECT * FROM sys.database_scoped_credentials WHERE name = 'inventory_lake_identity')
    CREATE DATABASE SCOPED CREDENTIAL inventory_lake_identity WITH IDENTITY = 'Managed Identity';
GO

-- The lake container's root; the views name their Delta tables' folders relative to it (aggregates/<name>/,
-- curated/<table>/).
IF NOT EXISTS (SELECT * FROM sys.external_data_sources WHERE name = 'inventory_lake')
    CREATE EXTERNAL DATA SOURCE inventory_lake WITH (
        LOCATION = 'https://<storage-account>.dfs.core.windows.net/<container>',
        CREDENTIAL = inventory_lake_identity
    );
GO

-- Report builders: read the views (schemas agg and curated, created by 02_views.sql). OPENROWSET over a data
-- source with a credential needs REFERENCES on the credential and ADMINISTER DATABASE BULK OPERATIONS.
IF DATABASE_PRINCIPAL_ID('<power-bi-readers>') IS NULL
    CREATE USER [<power-bi-readers>] FROM EXTERNAL PROVIDER;
GO
GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::inventory_lake_identity TO [<power-bi-readers>];
GRANT ADMINISTER DATABASE BULK OPERATIONS TO [<power-bi-readers>];
ALTER ROLE db_datareader ADD MEMBER [<power-bi-readers>];
GO
