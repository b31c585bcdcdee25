-- Per-sensor statistics every 10 seconds of event time, and an alert when a
-- sensor runs hot: sensors.toml written in SQL, with the same outputs. Run it
-- from the repository's root:
--
--     cargo run --release -p sluice-cli -- run examples/pipelines/sensors_sql.sql

SET execution.mode = 'micro-batch';
SET execution.batch_size = 16;          -- small, so that watermarks move within this small file
SET execution.batch_interval = '100ms';
SET execution.workers = 2;

-- A table read is the source; its settings are a TOML [source]'s.
CREATE TABLE readings (
    sensor VARCHAR,
    temperature DOUBLE,
    ts VARCHAR,                         -- epoch milliseconds or an RFC 3339 time
    WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH (
    connector = 'file',
    path = '../data/sensors.jsonl',     -- relative to this file
    format = 'jsonl',
    allowed_lateness = '5s'             -- for the windows over this table
);

-- Tables written are sinks.
CREATE TABLE per_sensor_file WITH (connector = 'file', path = 'out/sensors_sql/per_sensor.jsonl');
CREATE TABLE alerts WITH (connector = 'stdout');
CREATE TABLE late_file WITH (connector = 'file', path = 'out/sensors_sql/late.jsonl');
CREATE TABLE dead_letter_file WITH (connector = 'file', path = 'out/sensors_sql/dead_letter.jsonl');

CREATE VIEW valid AS
    SELECT * FROM readings WHERE temperature IS NOT NULL;

-- A window with allowed lateness writes a changelog: op and revision.
CREATE VIEW per_sensor AS
    SELECT sensor, window_start, window_end,
           count(*) AS readings, avg(temperature) AS avg_temp, max(temperature) AS max_temp
    FROM valid
    GROUP BY tumble(ts, INTERVAL '10' SECOND), sensor;

INSERT INTO per_sensor_file SELECT * FROM per_sensor;

INSERT INTO alerts
    SELECT sensor, window_start, window_end, max_temp, 'critical' AS level
    FROM per_sensor WHERE max_temp > 80;

-- The reserved streams: events beyond the allowed lateness, and records
-- that could not be read.
INSERT INTO late_file SELECT * FROM late;
INSERT INTO dead_letter_file SELECT * FROM dead_letter;
