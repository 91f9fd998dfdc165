-- NULL join keys next to a filtered dimension.
select count(*) from (select case when c_custkey % 7 = 0 then null else c_custkey end k, c_nationkey from customer) c join orders on o_custkey = c.k join nation on c.c_nationkey = n_nationkey where n_name = 'JAPAN';
