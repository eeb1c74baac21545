# Adds Swift's object-store service and its endpoints (public, internal,
# admin; region RegionOne) to a bootstrapped Keystone's sqlite database.
# Written straight into the database: Keystone's own write API answered 500
# "database is locked" on sqlite under its wsgiref server.
# Usage: python3 swift_keystone_catalog.py <keystone.db> <endpoint URL template>
import sqlite3
import sys
import uuid

db = sqlite3.connect(sys.argv[1])
sid = uuid.uuid4().hex
db.execute("insert into service (id, type, enabled, extra) values (?, 'object-store', 1, ?)",
           (sid, '{"name": "swift"}'))
for interface in ("public", "internal", "admin"):
    db.execute("insert into endpoint (id, legacy_endpoint_id, interface, service_id, url, extra,"
               " enabled, region_id) values (?, NULL, ?, ?, ?, '{}', 1, 'RegionOne')",
               (uuid.uuid4().hex, interface, sid, sys.argv[2]))
db.commit()
