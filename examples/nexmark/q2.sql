-- Nexmark q2, selection: the bids on a few auctions.
--   SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q2.jsonl');

CREATE VIEW bid AS SELECT * FROM nexmark WHERE kind = 'bid';

INSERT INTO results
    SELECT auction, price FROM bid WHERE auction % 123 = 0;
