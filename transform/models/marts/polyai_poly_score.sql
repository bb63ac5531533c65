{#- PolyScore per UTC day x account x project x variant: how many finished conversations have
    a score, its average and its distribution (continuous percentiles; PolyAI does not publish
    the scale). The variant comes from the conversation (stg_polyai__conversations). -#}
{{ config(enabled=var('polyai_conversation_details', false)) }}
with scored as (
  select
    d.started_on as day,
    d.account_id,
    d.project_id,
    c.variant_id,
    c.variant_name,
    d.poly_score
  from {{ ref('stg_polyai__conversation_details') }} as d
  left join {{ ref('stg_polyai__conversations') }} as c
    on c.conversation_id = d.conversation_id
)

select
  day,
  account_id,
  project_id,
  variant_id,
  max(variant_name) as variant_name,
  count(*) as conversations,
  count(poly_score) as scored,
  avg(poly_score) as avg_poly_score,
  min(poly_score) as min_poly_score,
  {{ polyai_percentile('poly_score', 0.1) }} as p10_poly_score,
  {{ polyai_percentile('poly_score', 0.25) }} as p25_poly_score,
  {{ polyai_percentile('poly_score', 0.5) }} as median_poly_score,
  {{ polyai_percentile('poly_score', 0.75) }} as p75_poly_score,
  {{ polyai_percentile('poly_score', 0.9) }} as p90_poly_score,
  max(poly_score) as max_poly_score
from scored
group by day, account_id, project_id, variant_id
