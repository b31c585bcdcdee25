-- Nexmark q7, highest bid: the bids that are the highest of a 10-second
-- window, found by joining the bids with each window's highest price. The
-- range is inclusive, so a bid exactly at a window's end also matches the
-- window before.
--   SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
--   FROM bid B JOIN (
--     SELECT MAX(price) AS maxprice, window_end AS dateTime
--     FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
--     GROUP BY window_start, window_end
--   ) B1 ON B.price = B1.maxprice
--   WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime;
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q7.jsonl');

CREATE VIEW bid AS SELECT * FROM nexmark WHERE kind = 'bid';

-- Windows go in GROUP BY; a subquery is a view.
CREATE VIEW highest AS
    SELECT max(price) AS maxprice, window_end AS we
    FROM bid GROUP BY tumble(ts, INTERVAL '10' SECOND);

-- The time condition goes in ON, where it bounds what the join keeps.
INSERT INTO results
    SELECT b.auction, b.price, b.person AS bidder, b.ts AS date_time
    FROM bid AS b JOIN highest AS w
      ON b.price = w.maxprice AND b.ts BETWEEN w.we - INTERVAL '10' SECOND AND w.we;
