-- A correlated minimum per part (Q2's shape) with a filtered part table.
select p_partkey, p_name from part, partsupp where p_partkey = ps_partkey and p_brand = 'Brand#12' and ps_supplycost = (select min(ps_supplycost) from partsupp p2 where p2.ps_partkey = p_partkey) order by 1 limit 10;
