-- An inner join with a filtered dimension above a LEFT JOIN.
select n_name, count(*) from orders left join customer on o_custkey = c_custkey join nation on c_nationkey = n_nationkey where n_name in ('FRANCE', 'GERMANY') group by n_name;
