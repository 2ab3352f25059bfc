-- Version 4: each retained packet's bytes beside its topic, so the gateway can hand its live
-- packets to a gateway that asks for them on joining (`[outcomes] join_requests`, for fleet
-- brokers that do not deliver retained messages to wildcard subscriptions). Rows from
-- version 3 have none and are not handed out; the next packet on their topic fills it.
ALTER TABLE retained ADD COLUMN packet BLOB;
