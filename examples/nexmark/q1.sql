-- Nexmark q1, currency conversion: each bid's price in euros.
--   SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid;
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q1.jsonl');

CREATE VIEW bid AS SELECT * FROM nexmark WHERE kind = 'bid';

INSERT INTO results
    SELECT auction, person AS bidder, 0.908 * price AS price, ts AS date_time FROM bid;
