-- A CTE read twice, once on each side of a LEFT JOIN, under ORDER BY and LIMIT.
with r as (select o_custkey, count(*) c from orders group by o_custkey) select a.o_custkey, a.c from r a left join r b on a.o_custkey = b.o_custkey + 1 where b.c is null order by 1 limit 5;
