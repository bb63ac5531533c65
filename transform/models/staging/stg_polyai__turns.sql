{#- One row per transcript turn of the latest version of each conversation, without the
    tombstones a re-read conversation leaves behind (_sdc_deleted_at). Transcript text only
    with var('polyai_include_pii'). -#}
{%- set source_relation = source('polyai', 'conversation_turns') -%}
{%- set columns = polyai_source_columns(source_relation) -%}
{%- set string = dbt.type_string() -%}

with latest as (
  {{ polyai_latest_version(source_relation, columns, ['conversation_id', 'turn_index']) }}
)

select
  cast(conversation_id as {{ string }}) as conversation_id,
  cast(turn_index as {{ dbt.type_bigint() }}) as turn_index,
  {{ dbt.concat(['cast(conversation_id as ' ~ string ~ ')', "'/'", 'cast(cast(turn_index as ' ~ dbt.type_bigint() ~ ') as ' ~ string ~ ')']) }} as turn_id,
  cast(account_id as {{ string }}) as account_id,
  cast(project_id as {{ string }}) as project_id,
  {{ polyai_utc_timestamp('started_at', columns.get('started_at')) }} as conversation_started_at,
  {{ polyai_utc_timestamp('user_input_datetime', columns.get('user_input_datetime')) }} as user_input_at,
  {{ polyai_utc_timestamp('agent_response_datetime', columns.get('agent_response_datetime')) }} as agent_response_at,
  cast(latency as {{ polyai_type_double() }}) as latency_seconds,
  coalesce(cast(is_silence as {{ dbt.type_boolean() }}), false) as is_silence,
  coalesce(cast(is_ood as {{ dbt.type_boolean() }}), false) as is_ood,
  coalesce(cast(barge_in as {{ dbt.type_boolean() }}), false) as barge_in
  {%- if var('polyai_include_pii') %},
  cast({{ polyai_column_or_null(columns, 'user_input', string) }} as {{ string }}) as user_input,
  cast({{ polyai_column_or_null(columns, 'agent_response', string) }} as {{ string }}) as agent_response,
  cast({{ polyai_column_or_null(columns, 'translated_user_input', string) }} as {{ string }}) as translated_user_input,
  cast({{ polyai_column_or_null(columns, 'english_agent_response', string) }} as {{ string }}) as english_agent_response,
  cast({{ polyai_column_or_null(columns, 'user_input_dtmf', string) }} as {{ string }}) as user_input_dtmf
  {%- endif %}
from latest
