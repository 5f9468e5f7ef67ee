-- stx-registry.sql: StarlingX SM (service management) definitions for
-- stx-registry and stx-token-server, in the schema of SM's database
-- (starlingx/ha service-mgmt/sm-db/database/create_sm_db.sql). They keep the
-- service names SM already knows, docker-distribution and
-- registry-token-server, so that existing references stay valid, and point
-- them at the OCF agents in ops/ocf (installed as provider "stx" under
-- /usr/lib/ocf/resource.d/stx/). See README.md here and stx-registry-ocf(7).
--
-- Start order on the active controller (SM follows SERVICE_DEPENDENCY):
--   management-ip -> drbd-dockerdistribution (promote) -> dockerdistribution-fs
--   -> registry-token-server -> docker-distribution
-- Stop runs in the reverse order.
--
-- Timeouts follow SM's practice for daemons: 15 s start and stop, an audit
-- (monitor) every 40 s with a 15 s timeout. The agents' own start waits for
-- a healthy monitor within OCF_RESKEY_CRM_meta_timeout (15 s by default) and
-- their stop sends SIGKILL after stop_timeout (10 s), both inside SM's 15 s.
BEGIN TRANSACTION;

-- The services, tracked through the agents' PID files.
-- Each INSERT adds its row only when it is missing: the file can be applied
-- again, and over a database that already has the old services.
INSERT INTO "SERVICES" SELECT (SELECT MAX(id) + 1 FROM "SERVICES"),'yes','docker-distribution','initial','initial','none','none',2,1,90000,4,16,'/var/run/stx-registry.pid' WHERE NOT EXISTS (SELECT 1 FROM "SERVICES" WHERE NAME='docker-distribution');
INSERT INTO "SERVICES" SELECT (SELECT MAX(id) + 1 FROM "SERVICES"),'yes','registry-token-server','initial','initial','none','none',2,1,90000,4,16,'/var/run/stx-token-server.pid' WHERE NOT EXISTS (SELECT 1 FROM "SERVICES" WHERE NAME='registry-token-server');
UPDATE "SERVICES" SET PID_FILE='/var/run/stx-registry.pid' WHERE NAME='docker-distribution';
UPDATE "SERVICES" SET PID_FILE='/var/run/stx-token-server.pid' WHERE NAME='registry-token-server';

-- Both are critical members of controller-services (active/standby, N + M).
INSERT INTO "SERVICE_GROUP_MEMBERS" SELECT (SELECT MAX(id) + 1 FROM "SERVICE_GROUP_MEMBERS"),'yes','controller-services','docker-distribution','critical' WHERE NOT EXISTS (SELECT 1 FROM "SERVICE_GROUP_MEMBERS" WHERE SERVICE_NAME='docker-distribution');
INSERT INTO "SERVICE_GROUP_MEMBERS" SELECT (SELECT MAX(id) + 1 FROM "SERVICE_GROUP_MEMBERS"),'yes','controller-services','registry-token-server','critical' WHERE NOT EXISTS (SELECT 1 FROM "SERVICE_GROUP_MEMBERS" WHERE SERVICE_NAME='registry-token-server');

-- Actions: plugin type ocf-script, class (provider) stx, the agent's name,
-- the OCF action, parameters, max failure/timeout/total retries, timeout (s),
-- interval (s).
DELETE FROM "SERVICE_ACTIONS" WHERE SERVICE_NAME IN ('docker-distribution','registry-token-server');
INSERT INTO "SERVICE_ACTIONS" VALUES('registry-token-server','enable','ocf-script','stx','stx-token-server','start','',2,2,2,15,'');
INSERT INTO "SERVICE_ACTIONS" VALUES('registry-token-server','disable','ocf-script','stx','stx-token-server','stop','',1,1,1,15,'');
INSERT INTO "SERVICE_ACTIONS" VALUES('registry-token-server','audit-enabled','ocf-script','stx','stx-token-server','monitor','',2,2,2,15,40);
INSERT INTO "SERVICE_ACTIONS" VALUES('registry-token-server','audit-disabled','ocf-script','stx','stx-token-server','monitor','',0,0,0,15,40);
INSERT INTO "SERVICE_ACTIONS" VALUES('docker-distribution','enable','ocf-script','stx','stx-registry','start','',2,2,2,15,'');
INSERT INTO "SERVICE_ACTIONS" VALUES('docker-distribution','disable','ocf-script','stx','stx-registry','stop','',1,1,1,15,'');
INSERT INTO "SERVICE_ACTIONS" VALUES('docker-distribution','audit-enabled','ocf-script','stx','stx-registry','monitor','',2,2,2,15,40);
INSERT INTO "SERVICE_ACTIONS" VALUES('docker-distribution','audit-disabled','ocf-script','stx','stx-registry','monitor','',0,0,0,15,40);

-- Instance parameters become OCF_RESKEY_* for the agents.
DELETE FROM "SERVICE_INSTANCES" WHERE SERVICE_NAME IN ('docker-distribution','registry-token-server');
INSERT INTO "SERVICE_INSTANCES" SELECT MAX(id) + 1,'registry-token-server','registry-token-server','binary=/usr/bin/stx-token-server,config=/etc/stx-token-server/stx-token-server.conf,pidfile=/var/run/stx-token-server.pid,k8s_marker=/etc/kubernetes/admin.conf' FROM "SERVICE_INSTANCES";
INSERT INTO "SERVICE_INSTANCES" SELECT MAX(id) + 1,'docker-distribution','docker-distribution','binary=/usr/bin/stx-registry,config=/etc/stx-registry/stx-registry.conf,pidfile=/var/run/stx-registry.pid,k8s_marker=/etc/kubernetes/admin.conf' FROM "SERVICE_INSTANCES";

-- Dependencies. Enable: the token server after the floating management IP
-- and the registry filesystem (its state_directory, refresh tokens, lives on
-- the DRBD filesystem so that they survive a failover); the registry after
-- the filesystem, the IP and the token server. Disable: the reverse.
DELETE FROM "SERVICE_DEPENDENCY" WHERE SERVICE_NAME IN ('docker-distribution','registry-token-server') OR DEPENDENT IN ('docker-distribution','registry-token-server');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','registry-token-server','not-applicable','enable','management-ip','enabled-active');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','registry-token-server','not-applicable','enable','dockerdistribution-fs','enabled-active');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','docker-distribution','not-applicable','enable','management-ip','enabled-active');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','docker-distribution','not-applicable','enable','dockerdistribution-fs','enabled-active');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','docker-distribution','not-applicable','enable','registry-token-server','enabled-active');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','registry-token-server','not-applicable','disable','docker-distribution','disabled');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','dockerdistribution-fs','not-applicable','disable','docker-distribution','disabled');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','dockerdistribution-fs','not-applicable','disable','registry-token-server','disabled');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','management-ip','not-applicable','disable','docker-distribution','disabled');
INSERT INTO "SERVICE_DEPENDENCY" VALUES('action','management-ip','not-applicable','disable','registry-token-server','disabled');

COMMIT;
