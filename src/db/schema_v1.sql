-- qis-edge state database, schema 1.

-- Every alarm raised here, with its answer once given: the outcome history. `record` is the
-- alarm's JSON (device, point, rule, threshold, context, pattern, answer).
CREATE TABLE alarms (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    rule TEXT NOT NULL,
    raised_at_ms INTEGER NOT NULL,
    outcome TEXT,
    answered_at_ms INTEGER,
    record TEXT NOT NULL
);
CREATE INDEX alarms_by_time ON alarms(raised_at_ms);

-- How often each rule (`device/point/rule`) was raised: alarm ids are never reused.
CREATE TABLE occurrences (
    rule_key TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);

-- The evidence per context and pattern.
CREATE TABLE ledger (
    key TEXT PRIMARY KEY,
    validations INTEGER NOT NULL,
    refutations INTEGER NOT NULL,
    lead_times_s TEXT NOT NULL
);

-- Named counters: `last_seq` (the last outcome packet's sequence number), `applied` (peer
-- packets that set or withdrew a proposal, ever), `probe` (written to test the disk).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Signed outcome packets waiting for the uplink broker's PUBACK, oldest first.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    alarm_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    packet BLOB NOT NULL,
    queued_at_ms INTEGER NOT NULL
);

-- Every alarm transition (raise, acknowledge, clear, return to normal): the alarm history.
CREATE TABLE alarm_events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    alarm_id TEXT,
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    rule TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    severity TEXT,
    value REAL,
    threshold REAL,
    by TEXT
);
CREATE INDEX alarm_events_by_time ON alarm_events(at_ms);

-- Trust of the peers answered here (hex public key).
CREATE TABLE trust (
    source TEXT PRIMARY KEY,
    trust REAL NOT NULL
);

-- Peers' live proposals, by target and source; `proposal` is its JSON.
CREATE TABLE proposals (
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    proposal TEXT NOT NULL,
    PRIMARY KEY (target, source)
);

-- The replay memory: each source's recent accepted sequence numbers (JSON array, ascending)
-- and when it was last heard from (an ordering, not a time).
CREATE TABLE replay (
    source BLOB PRIMARY KEY,
    seqs TEXT NOT NULL,
    used INTEGER NOT NULL
);
