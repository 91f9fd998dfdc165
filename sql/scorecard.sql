-- The credit-risk lifecycle in SQL: a scorecard built from the transactions, its table for
-- the validator, scores with reason codes, calibration, drift between two periods, and the
-- better of scorecard and logistic model promoted to champion. Runs after credit_risk.sql
-- (it reads clean_transactions):
--   cargo run -- -f sql/credit_risk.sql -f sql/scorecard.sql

-- 1. Development sample (January–August) and a later monitoring period (September on).
CREATE OR REPLACE VIEW development AS
SELECT * FROM clean_transactions WHERE transaction_date < DATE '2024-09-01';
CREATE OR REPLACE VIEW monitoring AS
SELECT * FROM clean_transactions WHERE transaction_date >= DATE '2024-09-01';

-- 2. Optimal WoE binning: at most 5 bins per characteristic, each with 5% of the rows,
--    event rates monotone (the direction that gives more IV).
TRAIN MODEL risk_bins USING woe_binning PREDICT risk_score
WITH (max_bins = 5, min_bin_share = 0.05, monotonic_trend = 'auto')
AS SELECT age, balance, transaction_amount, prior_defaults, transaction_type,
          merchant_category, risk_score
   FROM development;

-- Information value per characteristic: what the bins separate.
SELECT feature, min(trend) AS trend, count(*) - 2 AS bins, round(sum(iv), 4) AS iv
FROM binning_table(risk_bins) GROUP BY feature ORDER BY iv DESC;

-- 3. The scorecard: logistic regression on the WoE values, 600 points at 50:1 good:bad
--    odds, 20 points to double the odds; 30% of the customers held out.
TRAIN MODEL risk_card USING scorecard PREDICT risk_score
WITH (binning = 'risk_bins', pdo = 20, base_score = 600, base_odds = 50,
      split = 0.3, split_key = 'customer_id')
AS SELECT age, balance, transaction_amount, prior_defaults, transaction_type,
          merchant_category, risk_score, customer_id
   FROM development;

-- The table a validator reads line by line: points per bin.
SELECT feature, bin_range, round(woe, 4) AS woe, round(points, 1) AS points
FROM scorecard_table(risk_card)
WHERE bin_range NOT IN ('Special')
ORDER BY feature, bin;

-- 4. Scores and reason codes (points lost against each characteristic's best bin) for the
--    five lowest-scoring applicants of the monitoring period.
SELECT customer_id, round(score, 1) AS score, round(probability, 4) AS probability,
       reason_rank, feature, value, round(contribution, 1) AS points_below_best
FROM reason_codes(risk_card, (SELECT * FROM monitoring
                              ORDER BY predict('risk_card', age, balance, transaction_amount,
                                               prior_defaults, transaction_type, merchant_category),
                                       customer_id
                              LIMIT 5), 2)
ORDER BY score, customer_id, reason_rank;

-- 5. Calibration on the monitoring period's first month (isotonic), and what it changes.
CALIBRATE MODEL risk_card USING isotonic
AS SELECT age, balance, transaction_amount, prior_defaults, transaction_type,
          merchant_category, risk_score
   FROM monitoring WHERE transaction_date < DATE '2024-10-01';

SELECT 'before' AS calibration, round(brier, 5) AS brier, round(ece, 5) AS ece
FROM evaluate(risk_card@1, (SELECT * FROM monitoring WHERE transaction_date >= DATE '2024-10-01'))
UNION ALL
SELECT 'after', round(brier, 5), round(ece, 5)
FROM evaluate(risk_card@2, (SELECT * FROM monitoring WHERE transaction_date >= DATE '2024-10-01'))
ORDER BY calibration DESC;

-- 6. Drift between development and monitoring: PSI per characteristic and for the score.
SELECT DISTINCT feature, round(feature_psi, 4) AS psi, status
FROM drift(risk_card@1, monitoring)
ORDER BY psi DESC;

-- 7. Champion / challenger on the monitoring period: the scorecard (risk_card@1) against
--    a logistic regression on the raw columns, trained as the next version of the same
--    model, with DeLong's test of the AUC difference.
TRAIN MODEL risk_card USING logistic_regression PREDICT risk_score
WITH (handle_nulls = 'impute')
AS SELECT age, balance, transaction_amount, prior_defaults, transaction_type,
          merchant_category, risk_score
   FROM development;

SELECT model_1, model_2, round(auc_1, 4) AS auc_1, round(auc_2, 4) AS auc_2,
       round(z, 3) AS z, round(p_value, 4) AS p_value
FROM compare_models(risk_card@1, risk_card@3, monitoring);

-- Promote the better one: the alias is a catalog commit, set from the comparison itself;
-- predict(risk_card@champion, …) and 'risk_card@champion' name it from now on.
ALTER MODEL risk_card SET ALIAS champion =
  (SELECT CASE WHEN auc_1 >= auc_2 THEN 1 ELSE 3 END
   FROM compare_models(risk_card@1, risk_card@3, monitoring));

SHOW MODELS;
SELECT count(*) AS scored, round(avg(probability), 4) AS mean_probability
FROM predict(risk_card@champion, monitoring);

-- 8. The scorecard as one SQL expression any database can run.
EXPORT MODEL risk_card@1 TO 'risk_card.sql' OPTIONS (format = 'sql');
