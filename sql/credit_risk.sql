-- The seed credit-risk pipeline in SQL (the PySpark job it replaces: read, clean, persist,
-- summarise, then train and score).  Run it with:  cargo run --release -- -f sql/credit_risk.sql
-- or, with a built binary:                        augur -f sql/credit_risk.sql

-- 1. Read the transactions with a declared schema (Spark: spark.read.schema(...).csv(...)).
CREATE EXTERNAL TABLE transactions (
    customer_id        INT,
    transaction_date   DATE,
    transaction_amount DOUBLE,
    transaction_type   VARCHAR,
    age                INT,
    balance            DOUBLE,
    prior_defaults     INT,
    merchant_category  VARCHAR,
    risk_score         INT
) STORED AS CSV LOCATION 'testdata/transactions.csv' OPTIONS ('format.has_header' 'true');

-- 2. Clean: drop rows with a NULL in any column (Spark: df.na.drop()), and cache the result
--    (Spark: df.persist()).  In a database directory the cached table is stored on disk.
CREATE OR REPLACE TABLE clean_transactions AS
SELECT * FROM transactions
WHERE customer_id IS NOT NULL AND transaction_date IS NOT NULL
  AND transaction_amount IS NOT NULL AND transaction_type IS NOT NULL
  AND age IS NOT NULL AND balance IS NOT NULL AND prior_defaults IS NOT NULL
  AND merchant_category IS NOT NULL AND risk_score IS NOT NULL;

-- How much the cleaning removed.
SELECT (SELECT count(*) FROM transactions) AS rows_read,
       (SELECT count(*) FROM clean_transactions) AS rows_clean;

-- 3. Summary statistics by transaction type and label (Spark: groupBy(...).agg(...)).
SELECT transaction_type,
       risk_score,
       count(*)                               AS transactions,
       round(avg(transaction_amount), 2)      AS avg_amount,
       round(stddev(transaction_amount), 2)   AS sd_amount,
       round(min(transaction_amount), 2)      AS min_amount,
       round(max(transaction_amount), 2)      AS max_amount,
       round(avg(balance), 2)                 AS avg_balance
FROM clean_transactions
GROUP BY transaction_type, risk_score
ORDER BY transaction_type, risk_score;

-- Default rate by merchant category: the kind of signal the model will pick up.
SELECT merchant_category,
       count(*)                          AS transactions,
       round(avg(risk_score) * 100, 2)   AS risky_pct
FROM clean_transactions
GROUP BY merchant_category
ORDER BY risky_pct DESC;

-- 4. Train: features from the numeric columns and the string column transaction_type
--    (one-hot encoded inside the model), label risk_score.  First with the seed's exact
--    hyperparameters (Spark: LogisticRegression(maxIter=10, regParam=0.3, elasticNetParam=0.8)).
--    On realistic credit data they zero every coefficient: Augur warns and prints lambda_max.
TRAIN MODEL risk_seed USING logistic_regression PREDICT risk_score
  WITH (max_iter = 10, reg_param = 0.3, elastic_net_param = 0.8)
AS SELECT transaction_amount, transaction_type, age, balance, prior_defaults, merchant_category, risk_score
   FROM clean_transactions;

-- 5. A regularisation below lambda_max gives a real model; 70/30 split by customer so one
--    customer's transactions never land on both sides (Spark: randomSplit([0.7, 0.3])).
TRAIN MODEL risk USING logistic_regression PREDICT risk_score
  WITH (max_iter = 100, reg_param = 0.001, elastic_net_param = 0.8, split = 0.3,
        split_key = 'customer_id', seed = 42)
AS SELECT customer_id, transaction_amount, transaction_type, age, balance, prior_defaults,
          merchant_category, risk_score
   FROM clean_transactions;

-- 6. Score the held-out rows only (the split is a deterministic hash of customer_id and the
--    seed: hash_split(customer_id, 42, 0.3) is true for exactly the rows TRAIN held out) and
--    show the riskiest.
SELECT customer_id, transaction_type, transaction_amount, risk_score,
       prediction, round(probability, 4) AS probability
FROM predict(risk, (SELECT * FROM clean_transactions WHERE hash_split(customer_id, 42, 0.3)))
ORDER BY probability DESC
LIMIT 10;

-- 7. Evaluation on the held-out 30% and the model summary (Spark: model.summary).
SELECT * FROM evaluate(risk);
SELECT * FROM confusion_matrix(risk, 0.15);
SELECT feature, round(weight, 6) AS weight FROM model_weights(risk);
DESCRIBE MODEL risk;

-- 8. A challenger: gradient-boosted trees (LightGBM's algorithm and defaults) on the same
--    columns and the same 70/30 split. Monotone constraints keep the model explainable and
--    defensible: more prior defaults can never lower the risk, a higher balance never raise it.
TRAIN MODEL risk_gbm USING boosted_trees PREDICT risk_score
  WITH (num_iterations = 200, learning_rate = 0.05, num_leaves = 15, min_data_in_leaf = 40,
        monotone_constraints = 'prior_defaults:+1, balance:-1', split = 0.3,
        split_key = 'customer_id', seed = 42, early_stopping_rounds = 20)
AS SELECT customer_id, transaction_amount, transaction_type, age, balance, prior_defaults,
          merchant_category, risk_score
   FROM clean_transactions;

-- Champion against challenger on the same held-out customers.
SELECT 'logistic_regression' AS model, rows, round(auc_roc, 4) AS auc_roc,
       round(log_loss, 4) AS log_loss FROM evaluate(risk)
UNION ALL
SELECT 'boosted_trees', rows, round(auc_roc, 4), round(log_loss, 4) FROM evaluate(risk_gbm)
ORDER BY auc_roc DESC;

-- What drives the trees: splits, gain and the mean |contribution| (log-odds) per column.
SELECT feature, split_count, round(total_gain, 1) AS total_gain,
       round(mean_abs_contribution, 4) AS mean_abs_contribution
FROM feature_importance(risk_gbm)
ORDER BY mean_abs_contribution DESC;

-- 9. Reason codes (adverse-action reasons) for the ten riskiest held-out applicants: the
--    three inputs that pushed each score up most, with the applicant's value and the
--    contribution in log-odds (TreeSHAP, exact).
SELECT customer_id, round(probability, 4) AS probability, reason_rank, feature, value,
       round(contribution, 4) AS contribution
FROM reason_codes(risk_gbm, (SELECT * FROM clean_transactions
                             WHERE hash_split(customer_id, 42, 0.3)
                             ORDER BY predict_proba('risk_gbm', transaction_amount, transaction_type,
                                                    age, balance, prior_defaults, merchant_category) DESC
                             LIMIT 10), 3)
ORDER BY probability DESC, customer_id, reason_rank;
