{#- Introspection of the loaded tables, so one project serves every loader's shape:
    target-duckdb (no _sdc_* columns by default), target-postgres and target-snowflake (with
    _sdc_extracted_at, _sdc_batched_at, _sdc_deleted_at), PII-safe loads without `turns`. -#}

{#- name (lower case) -> data type of every column of `relation`; {} while parsing. -#}
{% macro polyai_source_columns(relation) -%}
  {%- set found = {} -%}
  {%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
      {%- do found.update({column.name | lower: column.data_type}) -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return(found) }}
{%- endmacro %}

{#- `name` when the source has it, else a typed null. -#}
{% macro polyai_column_or_null(columns, name, type) -%}
  {%- if name in columns -%}{{ name }}{%- else -%}cast(null as {{ type }}){%- endif -%}
{%- endmacro %}

{#- Keep the latest version of each key and drop it if that version is a tombstone.
    Upserting targets leave one row per key already; append-only loads leave every version,
    ordered by the Singer metadata columns when the loader wrote them. -#}
{% macro polyai_latest_version(relation, columns, key_columns) -%}
  {%- set order = [] -%}
  {%- for meta in ['_sdc_extracted_at', '_sdc_batched_at', '_sdc_received_at', '_sdc_sequence'] -%}
    {%- if meta in columns -%}{%- do order.append(meta ~ ' desc nulls last') -%}{%- endif -%}
  {%- endfor -%}
  {%- if not order -%}{%- do order.append(key_columns[0]) -%}{%- endif -%}
  select *
  from (
    select
      src.*,
      row_number() over (partition by {{ key_columns | join(', ') }} order by {{ order | join(', ') }}) as polyai_version_rank
    from {{ relation }} as src
  ) as versions
  where polyai_version_rank = 1
  {%- if '_sdc_deleted_at' in columns %}
    and _sdc_deleted_at is null
  {%- endif %}
{%- endmacro %}
