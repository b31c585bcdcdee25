-- Nexmark q8, monitor new users: the people who opened auctions in the
-- 10-second window they registered in.
--   SELECT P.id, P.name, P.starttime
--   FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
--         FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
--         GROUP BY id, name, window_start, window_end) P
--   JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
--         FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
--         GROUP BY seller, window_start, window_end) A
--   ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q8.jsonl');

CREATE VIEW person AS SELECT * FROM nexmark WHERE kind = 'person';
CREATE VIEW auction AS SELECT * FROM nexmark WHERE kind = 'auction';

-- A GROUP BY here needs an aggregate: count(*) stands in for none.
CREATE VIEW new_people AS
    SELECT person AS id, name, window_start AS starttime, window_end AS endtime, count(*) AS n
    FROM person GROUP BY tumble(ts, INTERVAL '10' SECOND), person, name;
CREATE VIEW sellers AS
    SELECT person AS seller, window_start AS starttime, window_end AS endtime, count(*) AS n
    FROM auction GROUP BY tumble(ts, INTERVAL '10' SECOND), person;

-- Rows of one window share its time: equal window ends bound the join.
INSERT INTO results
    SELECT p.id, p.name, p.starttime
    FROM new_people AS p JOIN sellers AS a
      ON p.id = a.seller AND p.starttime = a.starttime AND p.endtime = a.endtime;
