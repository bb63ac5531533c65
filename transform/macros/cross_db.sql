{#- Small cross-database helpers that dbt-core does not ship, dispatched per adapter.
    Each has a default (ANSI / PostgreSQL-like) and overrides where an adapter differs. -#}

{#- Continuous percentile of `expr` as an aggregate (median = 0.5). -#}
{% macro polyai_percentile(expr, fraction) -%}
  {{ return(adapter.dispatch('polyai_percentile', 'polyai')(expr, fraction)) }}
{%- endmacro %}

{% macro default__polyai_percentile(expr, fraction) -%}
  percentile_cont({{ fraction }}) within group (order by cast({{ expr }} as {{ polyai_type_double() }}))
{%- endmacro %}

{% macro duckdb__polyai_percentile(expr, fraction) -%}
  quantile_cont(cast({{ expr }} as double), {{ fraction }})
{%- endmacro %}

{#- A 64-bit float (dbt.type_float() is 32-bit FLOAT on DuckDB). -#}
{% macro polyai_type_double() -%}
  {{ return(adapter.dispatch('polyai_type_double', 'polyai')()) }}
{%- endmacro %}

{% macro default__polyai_type_double() -%}double precision{%- endmacro %}
{% macro duckdb__polyai_type_double() -%}double{%- endmacro %}
{% macro snowflake__polyai_type_double() -%}float{%- endmacro %}

{#- numerator / denominator as a float, null when the denominator is 0 or null. -#}
{% macro polyai_ratio(numerator, denominator) -%}
  case when {{ denominator }} > 0
       then cast({{ numerator }} as {{ polyai_type_double() }}) / {{ denominator }} end
{%- endmacro %}

{#- 1 when the boolean expression is true, else 0 (for sum()). -#}
{% macro polyai_count_if(condition) -%}
  sum(case when {{ condition }} then 1 else 0 end)
{%- endmacro %}

{#- Length of a JSON array column: DuckDB JSON, PostgreSQL jsonb (or a jsonb[] column when the
    loader typed the array), Snowflake VARIANT/ARRAY. Null when the value is not an array. -#}
{% macro polyai_json_array_length(expr, data_type=none) -%}
  {{ return(adapter.dispatch('polyai_json_array_length', 'polyai')(expr, data_type)) }}
{%- endmacro %}

{% macro default__polyai_json_array_length(expr, data_type) -%}
  json_array_length({{ expr }})
{%- endmacro %}

{% macro duckdb__polyai_json_array_length(expr, data_type) -%}
  case when json_type(cast({{ expr }} as json)) = 'ARRAY'
       then json_array_length(cast({{ expr }} as json)) end
{%- endmacro %}

{% macro postgres__polyai_json_array_length(expr, data_type) -%}
  {%- if data_type is not none and (data_type | lower in ('array', 'anyarray') or data_type.endswith('[]')) -%}
  cardinality({{ expr }})
  {%- else -%}
  case when jsonb_typeof(cast({{ expr }} as jsonb)) = 'array'
       then jsonb_array_length(cast({{ expr }} as jsonb)) end
  {%- endif -%}
{%- endmacro %}

{% macro snowflake__polyai_json_array_length(expr, data_type) -%}
  case when is_array({{ expr }}) then array_size({{ expr }}) end
{%- endmacro %}

{#- Timestamp plus a (possibly fractional) number of seconds, to the millisecond. -#}
{% macro polyai_add_seconds(timestamp, seconds) -%}
  {{ dbt.dateadd('millisecond', 'cast(round(' ~ seconds ~ ' * 1000) as ' ~ dbt.type_bigint() ~ ')', timestamp) }}
{%- endmacro %}

{#- A loaded timestamp as a UTC timestamp without time zone, whatever the loader made of it
    (timestamptz is read in UTC, never in the session's time zone). -#}
{% macro polyai_utc_timestamp(column, data_type=none) -%}
  {{ return(adapter.dispatch('polyai_utc_timestamp', 'polyai')(column, data_type)) }}
{%- endmacro %}

{% macro default__polyai_utc_timestamp(column, data_type) -%}
  {%- if data_type is not none and 'with time zone' in (data_type | lower) -%}
  ({{ column }} at time zone 'UTC')
  {%- else -%}
  cast({{ column }} as {{ dbt.type_timestamp() }})
  {%- endif -%}
{%- endmacro %}

{% macro duckdb__polyai_utc_timestamp(column, data_type) -%}
  {%- if data_type is not none and ('with time zone' in (data_type | lower) or 'timestamptz' in (data_type | lower)) -%}
  timezone('UTC', {{ column }})
  {%- else -%}
  cast({{ column }} as timestamp)
  {%- endif -%}
{%- endmacro %}

{% macro snowflake__polyai_utc_timestamp(column, data_type) -%}
  {%- if data_type is not none and ('_tz' in (data_type | lower) or '_ltz' in (data_type | lower)) -%}
  cast(convert_timezone('UTC', {{ column }}) as timestamp_ntz)
  {%- else -%}
  cast({{ column }} as timestamp_ntz)
  {%- endif -%}
{%- endmacro %}

{#- a = b, with null equal to null (join keys such as a missing variant). -#}
{% macro polyai_null_safe_equal(a, b) -%}
  ({{ a }} = {{ b }} or ({{ a }} is null and {{ b }} is null))
{%- endmacro %}
