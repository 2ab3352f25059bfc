-- Version 3: this gateway's packets kept retained on the fleet broker (one topic per source
-- and pattern), with when each expires: the uplink then clears it (an empty retained message),
-- so a gateway joining later is not handed advice its source no longer gives.
CREATE TABLE retained (
    topic TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
