-- Distributing the service's tables with Citus: SCALING.md explains each
-- step. Sections run one release apart (expand, backfill, contract); the
-- last one only on Citus. `tests/tests/api/citus_ddl.rs` runs the first
-- three against plain PostgreSQL, on a schema with rows in every table.

-- @section expand
ALTER TABLE sessions     ADD COLUMN session_key text;
ALTER TABLE agents       ADD COLUMN session_key text;
ALTER TABLE messages     ADD COLUMN session_key text;
ALTER TABLE multi_agents ADD COLUMN session_key text;
ALTER TABLE blobs        ADD COLUMN blob_key text;
ALTER TABLE blob_chunks  ADD COLUMN blob_key text;
ALTER TABLE blob_text    ADD COLUMN blob_key text;
ALTER TABLE blob_garbage ADD COLUMN blob_key text;

-- @section backfill
UPDATE sessions     SET session_key = tenant_id || '/' || session_id WHERE session_key IS NULL;
UPDATE agents       SET session_key = tenant_id || '/' || session_id WHERE session_key IS NULL;
UPDATE messages     SET session_key = tenant_id || '/' || session_id WHERE session_key IS NULL;
UPDATE multi_agents SET session_key = tenant_id || '/' || session_id WHERE session_key IS NULL;
UPDATE blobs        SET blob_key = tenant_id || '/' || key WHERE blob_key IS NULL;
UPDATE blob_chunks  SET blob_key = tenant_id || '/' || key WHERE blob_key IS NULL;
UPDATE blob_text    SET blob_key = tenant_id || '/' || key WHERE blob_key IS NULL;
UPDATE blob_garbage SET blob_key = tenant_id || '/' || key WHERE blob_key IS NULL;
ALTER TABLE sessions     ADD CONSTRAINT sessions_session_key CHECK (session_key = tenant_id || '/' || session_id) NOT VALID;
ALTER TABLE agents       ADD CONSTRAINT agents_session_key CHECK (session_key = tenant_id || '/' || session_id) NOT VALID;
ALTER TABLE messages     ADD CONSTRAINT messages_session_key CHECK (session_key = tenant_id || '/' || session_id) NOT VALID;
ALTER TABLE multi_agents ADD CONSTRAINT multi_agents_session_key CHECK (session_key = tenant_id || '/' || session_id) NOT VALID;
ALTER TABLE blobs        ADD CONSTRAINT blobs_blob_key CHECK (blob_key = tenant_id || '/' || key) NOT VALID;
ALTER TABLE blob_chunks  ADD CONSTRAINT blob_chunks_blob_key CHECK (blob_key = tenant_id || '/' || key) NOT VALID;
ALTER TABLE blob_text    ADD CONSTRAINT blob_text_blob_key CHECK (blob_key = tenant_id || '/' || key) NOT VALID;
ALTER TABLE blob_garbage ADD CONSTRAINT blob_garbage_blob_key CHECK (blob_key = tenant_id || '/' || key) NOT VALID;
ALTER TABLE sessions     VALIDATE CONSTRAINT sessions_session_key;
ALTER TABLE agents       VALIDATE CONSTRAINT agents_session_key;
ALTER TABLE messages     VALIDATE CONSTRAINT messages_session_key;
ALTER TABLE multi_agents VALIDATE CONSTRAINT multi_agents_session_key;
ALTER TABLE blobs        VALIDATE CONSTRAINT blobs_blob_key;
ALTER TABLE blob_chunks  VALIDATE CONSTRAINT blob_chunks_blob_key;
ALTER TABLE blob_text    VALIDATE CONSTRAINT blob_text_blob_key;
ALTER TABLE blob_garbage VALIDATE CONSTRAINT blob_garbage_blob_key;
ALTER TABLE sessions     ALTER COLUMN session_key SET NOT NULL;
ALTER TABLE agents       ALTER COLUMN session_key SET NOT NULL;
ALTER TABLE messages     ALTER COLUMN session_key SET NOT NULL;
ALTER TABLE multi_agents ALTER COLUMN session_key SET NOT NULL;
ALTER TABLE blobs        ALTER COLUMN blob_key SET NOT NULL;
ALTER TABLE blob_chunks  ALTER COLUMN blob_key SET NOT NULL;
ALTER TABLE blob_text    ALTER COLUMN blob_key SET NOT NULL;
ALTER TABLE blob_garbage ALTER COLUMN blob_key SET NOT NULL;

-- @section contract
ALTER TABLE messages     DROP CONSTRAINT fk_messages_agent;
ALTER TABLE agents       DROP CONSTRAINT fk_agents_session;
ALTER TABLE multi_agents DROP CONSTRAINT fk_multi_agents_session;
ALTER TABLE sessions     DROP CONSTRAINT sessions_pkey, ADD PRIMARY KEY (session_key, tenant_id, session_id);
ALTER TABLE agents       DROP CONSTRAINT agents_pkey, ADD PRIMARY KEY (session_key, tenant_id, session_id, agent_id);
ALTER TABLE messages     DROP CONSTRAINT messages_pkey, ADD PRIMARY KEY (session_key, tenant_id, session_id, agent_id, message_id);
ALTER TABLE multi_agents DROP CONSTRAINT multi_agents_pkey, ADD PRIMARY KEY (session_key, tenant_id, session_id, multi_agent_id);
ALTER TABLE blobs        DROP CONSTRAINT blobs_pkey, ADD PRIMARY KEY (blob_key, tenant_id, key);
ALTER TABLE blob_chunks  DROP CONSTRAINT blob_chunks_pkey, ADD PRIMARY KEY (blob_key, tenant_id, key, version, seq);
ALTER TABLE blob_text    DROP CONSTRAINT blob_text_pkey, ADD PRIMARY KEY (blob_key, tenant_id, key, version, seq);
ALTER TABLE blob_garbage DROP CONSTRAINT blob_garbage_pkey, ADD PRIMARY KEY (blob_key, tenant_id, key, version);
ALTER TABLE agents ADD CONSTRAINT fk_agents_session FOREIGN KEY (session_key, tenant_id, session_id)
  REFERENCES sessions (session_key, tenant_id, session_id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT fk_messages_agent FOREIGN KEY (session_key, tenant_id, session_id, agent_id)
  REFERENCES agents (session_key, tenant_id, session_id, agent_id) ON DELETE CASCADE;
ALTER TABLE multi_agents ADD CONSTRAINT fk_multi_agents_session FOREIGN KEY (session_key, tenant_id, session_id)
  REFERENCES sessions (session_key, tenant_id, session_id) ON DELETE CASCADE;

-- @section citus
SELECT create_distributed_table('sessions', 'session_key');
SELECT create_distributed_table('agents', 'session_key', colocate_with => 'sessions');
SELECT create_distributed_table('messages', 'session_key', colocate_with => 'sessions');
SELECT create_distributed_table('multi_agents', 'session_key', colocate_with => 'sessions');
SELECT create_distributed_table('blobs', 'blob_key');
SELECT create_distributed_table('blob_chunks', 'blob_key', colocate_with => 'blobs');
SELECT create_distributed_table('blob_text', 'blob_key', colocate_with => 'blobs');
SELECT create_distributed_table('blob_garbage', 'blob_key', colocate_with => 'blobs');
