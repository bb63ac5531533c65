{#- Conversations per UTC day x account x project x tag (a conversation counts once per tag it
    carries), with their average PolyScore. -#}
{{ config(enabled=var('polyai_conversation_details', false)) }}
{%- set details = ref('stg_polyai__conversation_details') -%}
{%- set columns = polyai_source_columns(details) -%}

with tagged as (
  {{ polyai_tag_rows(details, columns.get('tags')) }}
)

select
  started_on as day,
  account_id,
  project_id,
  tag,
  count(*) as conversations,
  avg(poly_score) as avg_poly_score
from tagged
group by started_on, account_id, project_id, tag
