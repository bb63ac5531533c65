{#- Per UTC day (of started_at) x account x project x channel x variant. Counts cover every
    conversation; outcome, duration and turn metrics cover finished ones (in-progress
    conversations have partial durations and no outcome yet); latency covers every turn with a
    latency of the day's conversations. -#}
{%- set grain = ['started_on', 'account_id', 'project_id', 'channel', 'variant_id'] -%}

with conversations as (
  select * from {{ ref('stg_polyai__conversations') }}
),

turns as (
  select
    {% for column in grain %}c.{{ column }}, {% endfor %}
    t.latency_seconds
  from {{ ref('stg_polyai__turns') }} as t
  inner join conversations as c on c.conversation_id = t.conversation_id
  where t.latency_seconds is not null
),

per_conversation as (
  select
    {{ grain | join(', ') }},
    max(variant_name) as variant_name,
    {{ polyai_conversation_aggregates() }}
  from conversations
  group by {{ grain | join(', ') }}
),

per_turn as (
  select
    {{ grain | join(', ') }},
    {{ polyai_latency_aggregates('latency_seconds') }}
  from turns
  group by {{ grain | join(', ') }}
)

select
  c.started_on as day,
  c.account_id,
  c.project_id,
  c.channel,
  c.variant_id,
  c.variant_name,
  {{ polyai_metric_columns('c', 't') }}
from per_conversation as c
left join per_turn as t
  on t.started_on = c.started_on
  and t.account_id = c.account_id
  and t.project_id = c.project_id
  and {{ polyai_null_safe_equal('t.channel', 'c.channel') }}
  and {{ polyai_null_safe_equal('t.variant_id', 'c.variant_id') }}
