-- What a run used, as its handler reported it (a result's `usage`, or the llm handler's reading of the endpoint's
-- answer): tokens in and out, the cost in its currency (reported, or computed from the worker's price table) and the
-- model. Each try of a run is its own row, with its own usage. All null when the handler reported none.
ALTER TABLE task_runs
    ADD COLUMN input_tokens  bigint,
    ADD COLUMN output_tokens bigint,
    ADD COLUMN cost          numeric,
    ADD COLUMN currency      char(3),
    ADD COLUMN model         text;
