{#- conversation_details helpers. -#}

{#- One row per (conversation, tag) of `relation` (stg_polyai__conversation_details), with its
    started_on, account_id, project_id and poly_score; `data_type` is the `tags` column's type
    (a JSON array as each loader stores it). -#}
{% macro polyai_tag_rows(relation, data_type) -%}
  {{ return(adapter.dispatch('polyai_tag_rows', 'polyai')(relation, data_type)) }}
{%- endmacro %}

{% macro default__polyai_tag_rows(relation, data_type) -%}
  {%- if data_type is not none and (data_type | lower in ('array', 'anyarray') or data_type.endswith('[]')) -%}
  select d.started_on, d.account_id, d.project_id, d.poly_score, cast(e.tag as {{ dbt.type_string() }}) as tag
  from {{ relation }} as d
  cross join lateral unnest(d.tags) as e(tag)
  {%- else -%}
  select d.started_on, d.account_id, d.project_id, d.poly_score, e.tag
  from {{ relation }} as d
  cross join lateral jsonb_array_elements_text(
    case when jsonb_typeof(cast(d.tags as jsonb)) = 'array' then cast(d.tags as jsonb) else '[]'::jsonb end
  ) as e(tag)
  {%- endif -%}
{%- endmacro %}

{% macro duckdb__polyai_tag_rows(relation, data_type) -%}
  select started_on, account_id, project_id, poly_score,
         unnest(from_json(cast(tags as json), '["VARCHAR"]')) as tag
  from {{ relation }}
  where json_type(cast(tags as json)) = 'ARRAY'
{%- endmacro %}

{% macro snowflake__polyai_tag_rows(relation, data_type) -%}
  select d.started_on, d.account_id, d.project_id, d.poly_score, cast(f.value as {{ dbt.type_string() }}) as tag
  from {{ relation }} as d,
       lateral flatten(input => d.tags) as f
{%- endmacro %}
