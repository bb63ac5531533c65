{#- Per account x project x variant over everything loaded: the daily metrics side by side, and
    each one's difference from the project's busiest variant (most conversations; ties go to
    the smallest variant_id). Same definitions as polyai_daily. -#}
{%- set compared = ['containment_rate', 'handoff_rate', 'median_duration_seconds',
                    'p90_duration_seconds', 'avg_turns', 'silence_rate', 'ood_rate',
                    'p50_latency_seconds', 'p90_latency_seconds', 'p95_latency_seconds'] -%}
{%- set grain = ['account_id', 'project_id', 'variant_id'] -%}

with conversations as (
  select * from {{ ref('stg_polyai__conversations') }}
),

per_conversation as (
  select
    {{ grain | join(', ') }},
    max(variant_name) as variant_name,
    min(started_on) as first_day,
    max(started_on) as last_day,
    {{ polyai_conversation_aggregates() }}
  from conversations
  group by {{ grain | join(', ') }}
),

per_turn as (
  select
    c.account_id,
    c.project_id,
    c.variant_id,
    {{ polyai_latency_aggregates('t.latency_seconds') }}
  from {{ ref('stg_polyai__turns') }} as t
  inner join conversations as c on c.conversation_id = t.conversation_id
  where t.latency_seconds is not null
  group by c.account_id, c.project_id, c.variant_id
),

metrics as (
  select
    c.account_id,
    c.project_id,
    c.variant_id,
    c.variant_name,
    c.first_day,
    c.last_day,
    {{ polyai_metric_columns('c', 't') }},
    row_number() over (
      partition by c.account_id, c.project_id
      order by c.conversations desc, c.variant_id
    ) as busyness_rank
  from per_conversation as c
  left join per_turn as t
    on t.account_id = c.account_id
    and t.project_id = c.project_id
    and {{ polyai_null_safe_equal('t.variant_id', 'c.variant_id') }}
),

busiest as (
  select * from metrics where busyness_rank = 1
)

select
  m.account_id,
  m.project_id,
  m.variant_id,
  m.variant_name,
  m.first_day,
  m.last_day,
  m.conversations,
  m.finished,
  m.contained,
  m.handoffs,
  {%- for metric in compared %}
  m.{{ metric }},
  {%- endfor %}
  m.turns_with_latency,
  m.busyness_rank = 1 as is_busiest_variant,
  b.variant_id as busiest_variant_id,
  {%- for metric in compared %}
  m.{{ metric }} - b.{{ metric }} as {{ metric }}_vs_busiest{{ ',' if not loop.last }}
  {%- endfor %}
from metrics as m
inner join busiest as b
  on b.account_id = m.account_id and b.project_id = m.project_id
