-- Nexmark q0, pass-through: every bid, its columns as they are.
--   SELECT auction, bidder, price, dateTime, extra FROM bid;
-- Sluice's generated events have no `extra` padding column, and the event
-- time is `ts` (epoch milliseconds).
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q0.jsonl');

CREATE VIEW bid AS SELECT * FROM nexmark WHERE kind = 'bid';

INSERT INTO results
    SELECT auction, person AS bidder, price, ts AS date_time FROM bid;
