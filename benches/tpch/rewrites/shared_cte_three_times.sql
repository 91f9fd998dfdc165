-- A CTE read three times: two scalar subqueries and the query itself.
with r as (select o_custkey, sum(o_totalprice) s from orders group by o_custkey) select count(*) from r where s > (select avg(s) from r) and s < (select max(s) from r);
