{#- One row per conversation's detail (the tap's conversation_details stream, off unless
    selected; build these models with var polyai_conversation_details: true): the latest
    version, typed, timestamps in UTC, empty strings as null. short_summary, note and audio_url
    (personal data) only with var('polyai_include_pii'). -#}
{{ config(enabled=var('polyai_conversation_details', false)) }}
{%- set source_relation = source('polyai', 'conversation_details') -%}
{%- set columns = polyai_source_columns(source_relation) -%}
{%- set double = polyai_type_double() -%}
{%- set string = dbt.type_string() -%}

with latest as (
  {{ polyai_latest_version(source_relation, columns, ['conversation_id']) }}
)

select
  cast(conversation_id as {{ string }}) as conversation_id,
  cast(account_id as {{ string }}) as account_id,
  cast(project_id as {{ string }}) as project_id,
  {{ polyai_utc_timestamp('started_at', columns.get('started_at')) }} as started_at,
  cast({{ polyai_utc_timestamp('started_at', columns.get('started_at')) }} as date) as started_on,
  {{ polyai_utc_timestamp('finished_at', columns.get('finished_at')) }} as finished_at,
  cast({{ polyai_column_or_null(columns, 'duration', double) }} as {{ double }}) as duration_seconds,
  nullif(cast({{ polyai_column_or_null(columns, 'language', string) }} as {{ string }}), '') as language,
  nullif(cast({{ polyai_column_or_null(columns, 'direction', string) }} as {{ string }}), '') as direction,
  cast({{ polyai_column_or_null(columns, 'poly_score', double) }} as {{ double }}) as poly_score,
  nullif(cast({{ polyai_column_or_null(columns, 'deployment_id', string) }} as {{ string }}), '') as deployment_id,
  {{ polyai_json_array_length('tags', columns.get('tags')) }} as tag_count,
  tags
  {%- if var('polyai_include_pii') %},
  nullif(cast({{ polyai_column_or_null(columns, 'short_summary', string) }} as {{ string }}), '') as short_summary,
  nullif(cast({{ polyai_column_or_null(columns, 'note', string) }} as {{ string }}), '') as note,
  nullif(cast({{ polyai_column_or_null(columns, 'audio_url', string) }} as {{ string }}), '') as audio_url
  {%- endif %}
from latest
