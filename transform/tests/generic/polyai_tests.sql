{#- Generic data tests of our own (no dbt packages). -#}

{#- No two rows share these columns (nulls compare equal). -#}
{% test polyai_unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#- A rate: null (nothing to divide) or between 0 and 1 inclusive. -#}
{% test polyai_rate(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}

{#- Every row satisfies `expression` (rows where it is null or false fail). -#}
{% test polyai_expression_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not coalesce({{ expression }}, false)
{% endtest %}
