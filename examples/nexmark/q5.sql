-- Nexmark q5, hot items: the auctions with the most bids in each window of
-- 10 seconds sliding by 2 seconds (ties included). The subqueries are
-- views; the window of the maxima is the windows of the counts, grouped
-- by their bounds.
--   SELECT AuctionBids.auction, AuctionBids.num
--   FROM (SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
--         FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
--         GROUP BY auction, window_start, window_end) AS AuctionBids
--   JOIN (SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
--         FROM (... the same counts ...) AS CountBids
--         GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
--   ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
--      AND AuctionBids.num >= MaxBids.maxn;
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q5.jsonl');

CREATE VIEW bid AS SELECT * FROM nexmark WHERE kind = 'bid';

CREATE VIEW auction_bids AS
    SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
    FROM bid GROUP BY hop(ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND), auction;

-- Grouped by its windows' bounds: one row per window, when it is complete.
CREATE VIEW max_bids AS
    SELECT starttime, endtime, max(num) AS maxn
    FROM auction_bids GROUP BY starttime, endtime;

INSERT INTO results
    SELECT a.auction, a.num
    FROM auction_bids AS a JOIN max_bids AS m
      ON a.starttime = m.starttime AND a.endtime = m.endtime AND a.num >= m.maxn;
