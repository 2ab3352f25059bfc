-- Version 2: how adaptable levels and peers' trust changed, for the thresholds page. Pruned
-- like the alarm history ([storage] history_days, events_max).

-- Every change of an adaptable rule's level in use (`rule` is `<device>/<point>/<rule>`).
CREATE TABLE level_events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    rule TEXT NOT NULL,
    value REAL NOT NULL,
    baseline REAL NOT NULL,
    proposals INTEGER NOT NULL
);
CREATE INDEX level_events_by_rule ON level_events(rule, id);

-- Every change of a peer's trust (hex public key), with the answer that moved it.
CREATE TABLE trust_events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    trust REAL NOT NULL,
    alarm_id TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX trust_events_by_source ON trust_events(source, id);
