-- A per-key aggregate on the left of a join with a filtered table.
select count(*) from (select ps_partkey, min(ps_supplycost) m from partsupp group by ps_partkey) x join part on p_partkey = x.ps_partkey where p_size = 15;
