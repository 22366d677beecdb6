"""Key management: key store, ETSI GS QKD 014 server and client, relay over trusted nodes, hybrid keys."""
