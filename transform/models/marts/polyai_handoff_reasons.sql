{#- Finished conversations handed off, per UTC day x account x project x reason x destination.
    An empty or missing reason or destination reads '(none given)'. -#}
with handoffs as (
  select
    started_on as day,
    account_id,
    project_id,
    coalesce(handoff_reason, '(none given)') as handoff_reason,
    coalesce(handoff_destination, '(none given)') as handoff_destination
  from {{ ref('stg_polyai__conversations') }}
  where is_handoff
),

per_reason as (
  select day, account_id, project_id, handoff_reason, handoff_destination, count(*) as handoffs
  from handoffs
  group by day, account_id, project_id, handoff_reason, handoff_destination
),

per_day as (
  select day, account_id, project_id, count(*) as day_handoffs
  from handoffs
  group by day, account_id, project_id
)

select
  r.day,
  r.account_id,
  r.project_id,
  r.handoff_reason,
  r.handoff_destination,
  r.handoffs,
  {{ polyai_ratio('r.handoffs', 'd.day_handoffs') }} as share_of_day_handoffs
from per_reason as r
inner join per_day as d
  on d.day = r.day and d.account_id = r.account_id and d.project_id = r.project_id
