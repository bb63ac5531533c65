{#- One row per conversation id: the latest version the loader holds, typed, with the flags the
    marts count. Phone numbers and `state` only with var('polyai_include_pii'). -#}
{%- set source_relation = source('polyai', 'conversations') -%}
{%- set columns = polyai_source_columns(source_relation) -%}
{%- set double = polyai_type_double() -%}

with latest as (
  {{ polyai_latest_version(source_relation, columns, ['id']) }}
),

typed as (
  select
    cast(id as {{ dbt.type_string() }}) as conversation_id,
    cast(account_id as {{ dbt.type_string() }}) as account_id,
    cast(project_id as {{ dbt.type_string() }}) as project_id,
    nullif(cast(variant_id as {{ dbt.type_string() }}), '') as variant_id,
    nullif(cast(variant_name as {{ dbt.type_string() }}), '') as variant_name,
    nullif(cast(environment as {{ dbt.type_string() }}), '') as environment,
    nullif(cast(channel as {{ dbt.type_string() }}), '') as channel,
    {{ polyai_utc_timestamp('started_at', columns.get('started_at')) }} as started_at,
    coalesce(cast(in_progress as {{ dbt.type_boolean() }}), false) as in_progress,
    cast(num_turns as {{ dbt.type_bigint() }}) as num_turns,
    cast(total_duration as {{ double }}) as total_duration_seconds,
    cast(polyai_duration as {{ double }}) as polyai_duration_seconds,
    coalesce(cast(handoff as {{ dbt.type_boolean() }}), false) as handoff,
    nullif(cast(handoff_reason as {{ dbt.type_string() }}), '') as handoff_reason,
    nullif(cast(handoff_destination as {{ dbt.type_string() }}), '') as handoff_destination,
    cast(num_silences as {{ dbt.type_bigint() }}) as num_silences,
    cast(num_ood as {{ dbt.type_bigint() }}) as num_ood,
    {%- if 'turns' in columns %}
    {{ polyai_json_array_length('turns', columns['turns']) }} as transcript_turns
    {%- else %}
    cast(null as {{ dbt.type_bigint() }}) as transcript_turns
    {%- endif %}
    {%- if var('polyai_include_pii') %},
    nullif(cast({{ polyai_column_or_null(columns, 'from_number', dbt.type_string()) }} as {{ dbt.type_string() }}), '') as from_number,
    nullif(cast({{ polyai_column_or_null(columns, 'to_number', dbt.type_string()) }} as {{ dbt.type_string() }}), '') as to_number,
    {{ polyai_column_or_null(columns, 'state', dbt.type_string()) }} as state
    {%- endif %}
  from latest
)

select
  conversation_id,
  account_id,
  project_id,
  variant_id,
  variant_name,
  environment,
  channel,
  started_at,
  cast(started_at as date) as started_on,
  case when not in_progress and total_duration_seconds is not null
       then {{ polyai_add_seconds('started_at', 'total_duration_seconds') }} end as ended_at,
  not in_progress as is_finished,
  not in_progress and not handoff as is_contained,
  not in_progress and handoff as is_handoff,
  coalesce(upper(channel) like 'VOICE%', false) as is_voice,
  in_progress,
  handoff,
  handoff_reason,
  handoff_destination,
  num_turns,
  num_silences,
  num_ood,
  total_duration_seconds,
  polyai_duration_seconds,
  transcript_turns,
  coalesce(transcript_turns, 0) > 0 as has_transcript
  {%- if var('polyai_include_pii') %},
  from_number,
  to_number,
  state
  {%- endif %}
from typed
