-- A load step from a file (tests/plugin/test_plugin_fixtures.py): unqualified names land in
-- the test's schema.
INSERT INTO acme_docs (id, creation_utc, version, data)
VALUES ('t2', '2027', '0.1', '{"id": "t2", "creation_utc": "2027", "version": "0.1"}');
