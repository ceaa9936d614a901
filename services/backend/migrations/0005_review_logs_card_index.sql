-- No query reads review logs by card, and the index cost every review a write to a random page of
-- it (about a third of a SQLite review's commit). A card-history query brings it back with itself.
DROP INDEX review_logs_card;
