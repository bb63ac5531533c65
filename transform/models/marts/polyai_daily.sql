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
    count(*) as conversations,
    {{ polyai_count_if('is_finished') }} as finished,
    {{ polyai_count_if('is_contained') }} as contained,
    {{ polyai_count_if('is_handoff') }} as handoffs,
    {{ polyai_percentile('case when is_finished then total_duration_seconds end', 0.5) }} as median_duration_seconds,
    {{ polyai_percentile('case when is_finished then total_duration_seconds end', 0.9) }} as p90_duration_seconds,
    avg(case when is_finished then cast(num_turns as {{ polyai_type_double() }}) end) as avg_turns,
    sum(case when is_finished then num_turns end) as finished_turns,
    sum(case when is_finished then num_silences end) as silence_turns,
    sum(case when is_finished then num_ood end) as ood_turns
  from conversations
  group by {{ grain | join(', ') }}
),

per_turn as (
  select
    {{ grain | join(', ') }},
    count(*) as turns_with_latency,
    {{ polyai_percentile('latency_seconds', 0.5) }} as p50_latency_seconds,
    {{ polyai_percentile('latency_seconds', 0.9) }} as p90_latency_seconds,
    {{ polyai_percentile('latency_seconds', 0.95) }} as p95_latency_seconds
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
  c.conversations,
  c.finished,
  c.contained,
  c.handoffs,
  {{ polyai_ratio('c.contained', 'c.finished') }} as containment_rate,
  {{ polyai_ratio('c.handoffs', 'c.finished') }} as handoff_rate,
  c.median_duration_seconds,
  c.p90_duration_seconds,
  c.avg_turns,
  {{ polyai_ratio('c.silence_turns', 'c.finished_turns') }} as silence_rate,
  {{ polyai_ratio('c.ood_turns', 'c.finished_turns') }} as ood_rate,
  coalesce(t.turns_with_latency, 0) as turns_with_latency,
  t.p50_latency_seconds,
  t.p90_latency_seconds,
  t.p95_latency_seconds
from per_conversation as c
left join per_turn as t
  on t.started_on = c.started_on
  and t.account_id = c.account_id
  and t.project_id = c.project_id
  and {{ polyai_null_safe_equal('t.channel', 'c.channel') }}
  and {{ polyai_null_safe_equal('t.variant_id', 'c.variant_id') }}
