-- Nexmark q3, local item suggestion: who sells in category 10 in a few
-- states. Nexmark's join of auctions and people keeps every row (a seller
-- may come after the auction); here each row is kept a day of event time
-- (SET state.ttl), longer than any generated run here, so the result is
-- the same. The generator writes states in lower case.
--   SELECT P.name, P.city, P.state, A.id
--   FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
--   WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
CREATE TABLE nexmark WITH (connector = 'nexmark', events = 100000, event_time = 'ts');
CREATE TABLE results WITH (connector = 'file', path = 'out/q3.jsonl');

SET state.ttl = '1d';

-- The generator's flat rows: an auction's seller is its `person`.
CREATE VIEW auction AS SELECT * FROM nexmark WHERE kind = 'auction';
CREATE VIEW person AS SELECT * FROM nexmark WHERE kind = 'person';

INSERT INTO results
    SELECT p.name, p.city, p.state, a.auction AS id
    FROM auction AS a JOIN person AS p ON a.person = p.person
    WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca');
