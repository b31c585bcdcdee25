-- Nexmark q4, average price per category: each auction's closing price
-- is its highest bid between its start and its end; the closing prices
-- are averaged per category. The highest bid of an auction is a running
-- aggregate (a changelog: it rises bid by bid), and the average takes an
-- auction's earlier closing price back out when it rises.
--   SELECT Q.category, AVG(Q.final)
--   FROM (SELECT MAX(B.price) AS final, A.category
--         FROM auction A, bid B
--         WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
--         GROUP BY A.id, A.category) Q
--   GROUP BY Q.category;
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q4.jsonl');

CREATE VIEW auction AS SELECT * FROM nexmark WHERE kind = 'auction';
CREATE VIEW bid AS SELECT * FROM nexmark WHERE kind = 'bid';

-- A bid counts between its auction's start and end; an hour bounds what
-- the join keeps (auctions here last at most a few hundred milliseconds).
CREATE VIEW closing AS
    SELECT a.auction AS id, a.category, max(b.price) AS final
    FROM auction AS a JOIN bid AS b
      ON a.auction = b.auction
     AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' HOUR
     AND b.ts <= a.expires
    GROUP BY a.auction, a.category;

-- The average as the suite computes it over BIGINT: truncated.
INSERT INTO results
    SELECT category, CAST(sum(final) AS BIGINT) / count(*) AS average
    FROM closing GROUP BY category;
