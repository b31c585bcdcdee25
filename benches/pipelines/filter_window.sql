-- The pipeline benchmark of filter_window.toml, written in SQL: JSON lines ->
-- filter -> tumbling window -> file. scripts/bench_sql.sh runs both side by
-- side (it writes a copy of this file with the input's and outputs' paths).
SET execution.mode = 'micro-batch';
SET execution.batch_size = 8192;
SET execution.workers = 1;

CREATE TABLE readings (
    sensor VARCHAR,
    temperature DOUBLE,
    ts BIGINT,
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (connector = 'file', path = 'input.jsonl');
CREATE TABLE per_sensor_file WITH (connector = 'file', path = 'per_sensor.jsonl');
CREATE TABLE dead_letter_file WITH (connector = 'file', path = 'dead_letter.jsonl');

INSERT INTO per_sensor_file
    SELECT sensor, window_start, window_end,
           count(*) AS readings, avg(temperature) AS avg_temp, max(temperature) AS max_temp
    FROM readings
    WHERE temperature > 20.0
    GROUP BY tumble(ts, INTERVAL '10' SECOND), sensor;
INSERT INTO dead_letter_file SELECT * FROM dead_letter;
