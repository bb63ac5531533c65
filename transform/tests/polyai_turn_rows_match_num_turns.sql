{#- Wherever the transcript is visible (the conversation's `turns` array is non-empty, or turn
    rows were loaded for it), the conversation has exactly num_turns turn rows. A conversation
    whose transcript access is disabled has num_turns > 0 and no turn rows: not a failure. -#}
with turn_rows as (
  select conversation_id, count(*) as turn_rows
  from {{ ref('stg_polyai__turns') }}
  group by conversation_id
)

select
  c.conversation_id,
  c.num_turns,
  c.transcript_turns,
  coalesce(t.turn_rows, 0) as turn_rows
from {{ ref('stg_polyai__conversations') }} as c
left join turn_rows as t on t.conversation_id = c.conversation_id
where (c.has_transcript or t.turn_rows is not null)
  and coalesce(t.turn_rows, 0) <> coalesce(c.num_turns, -1)
