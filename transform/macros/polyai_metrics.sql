{#- The metric definitions polyai_daily and polyai_variant_comparison share, so that the two
    marts cannot drift apart. Counts cover every conversation; outcome, duration and turn
    metrics cover finished ones (in-progress conversations have partial durations and no
    outcome yet). -#}

{#- Aggregates over stg_polyai__conversations rows, one row per group. -#}
{% macro polyai_conversation_aggregates() -%}
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
{%- endmacro %}

{#- Aggregates over turns that have a latency (`latency`: the column), one row per group. -#}
{% macro polyai_latency_aggregates(latency) -%}
    count(*) as turns_with_latency,
    {{ polyai_percentile(latency, 0.5) }} as p50_latency_seconds,
    {{ polyai_percentile(latency, 0.9) }} as p90_latency_seconds,
    {{ polyai_percentile(latency, 0.95) }} as p95_latency_seconds
{%- endmacro %}

{#- The published metrics, from the conversation aggregates (alias `c`) left-joined to the
    latency aggregates (alias `t`). -#}
{% macro polyai_metric_columns(c='c', t='t') -%}
    {{ c }}.conversations,
    {{ c }}.finished,
    {{ c }}.contained,
    {{ c }}.handoffs,
    {{ polyai_ratio(c ~ '.contained', c ~ '.finished') }} as containment_rate,
    {{ polyai_ratio(c ~ '.handoffs', c ~ '.finished') }} as handoff_rate,
    {{ c }}.median_duration_seconds,
    {{ c }}.p90_duration_seconds,
    {{ c }}.avg_turns,
    {{ polyai_ratio(c ~ '.silence_turns', c ~ '.finished_turns') }} as silence_rate,
    {{ polyai_ratio(c ~ '.ood_turns', c ~ '.finished_turns') }} as ood_rate,
    coalesce({{ t }}.turns_with_latency, 0) as turns_with_latency,
    {{ t }}.p50_latency_seconds,
    {{ t }}.p90_latency_seconds,
    {{ t }}.p95_latency_seconds
{%- endmacro %}
