-- A filtered dimension inside a LEFT JOIN: the filtered-join pushdown must not move it.
select count(*), count(n_name) from customer left join nation on c_nationkey = n_nationkey and n_name = 'FRANCE' left join orders on o_custkey = c_custkey;
