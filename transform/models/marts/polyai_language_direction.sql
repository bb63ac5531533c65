{#- Conversations per UTC day x account x project x language x direction (inbound, outbound),
    with their share of the day and their average PolyScore. Missing values read '(unknown)'. -#}
{{ config(enabled=var('polyai_conversation_details', false)) }}
with details as (
  select
    started_on as day,
    account_id,
    project_id,
    coalesce(language, '(unknown)') as language,
    coalesce(direction, '(unknown)') as direction,
    poly_score
  from {{ ref('stg_polyai__conversation_details') }}
),

per_split as (
  select
    day, account_id, project_id, language, direction,
    count(*) as conversations,
    avg(poly_score) as avg_poly_score
  from details
  group by day, account_id, project_id, language, direction
),

per_day as (
  select day, account_id, project_id, count(*) as day_conversations
  from details
  group by day, account_id, project_id
)

select
  s.day,
  s.account_id,
  s.project_id,
  s.language,
  s.direction,
  s.conversations,
  {{ polyai_ratio('s.conversations', 'd.day_conversations') }} as share_of_day,
  s.avg_poly_score
from per_split as s
inner join per_day as d
  on d.day = s.day and d.account_id = s.account_id and d.project_id = s.project_id
