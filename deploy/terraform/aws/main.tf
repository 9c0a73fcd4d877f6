# The app artifact's registry and its PostgreSQL. The cluster side (SpinKube, the Secrets,
# the SpinApp) is ../spinkube and ../app, applied after this with these outputs.

locals {
  db_major  = split(".", var.db_engine_version)[0]
  db_family = "postgres${local.db_major}"
}

# --- registry -----------------------------------------------------------------------

resource "aws_ecr_repository" "app" {
  count = var.create_ecr_repository ? 1 : 0

  name = var.ecr_repository_name
  # Release tags and commit-SHA tags are never moved.
  image_tag_mutability = "IMMUTABLE"

  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "app" {
  count = var.create_ecr_repository ? 1 : 0

  repository = aws_ecr_repository.app[0].name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Drop untagged artifacts after 14 days"
      selection = {
        tagStatus   = "untagged"
        countType   = "sinceImagePushed"
        countUnit   = "days"
        countNumber = 14
      }
      action = { type = "expire" }
    }]
  })
}

# --- PostgreSQL -----------------------------------------------------------------------

resource "random_password" "db" {
  length = 32
  # URL-safe: the password goes into DATABASE_URL unescaped.
  special = false
}

resource "aws_db_subnet_group" "db" {
  name       = "${var.name}-db"
  subnet_ids = var.db_subnet_ids
}

resource "aws_security_group" "db" {
  name        = "${var.name}-db"
  description = "PostgreSQL for ${var.name}: reachable from the cluster only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_sg" {
  for_each = toset(var.db_client_security_group_ids)

  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from the cluster"
}

resource "aws_vpc_security_group_ingress_rule" "db_from_cidr" {
  for_each = toset(var.db_client_cidr_blocks)

  security_group_id = aws_security_group.db.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  description       = "PostgreSQL from the cluster"
}

resource "aws_db_parameter_group" "db" {
  name   = "${var.name}-${local.db_family}"
  family = local.db_family

  # TLS only; the DSN says sslmode=require and the Spin host verifies the certificate.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Statements over 1 s in the PostgreSQL log: the app's are single-row reads and writes.
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  dynamic "parameter" {
    for_each = var.db_max_connections == null ? [] : [var.db_max_connections]
    content {
      name         = "max_connections"
      value        = tostring(parameter.value)
      apply_method = "pending-reboot"
    }
  }
}

resource "aws_db_instance" "db" {
  identifier     = "${var.name}-db"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name  = var.db_name
  username = var.db_username
  password = random_password.db.result
  port     = 5432

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true

  db_subnet_group_name   = aws_db_subnet_group.db.name
  vpc_security_group_ids = [aws_security_group.db.id]
  parameter_group_name   = aws_db_parameter_group.db.name
  publicly_accessible    = false
  multi_az               = var.db_multi_az

  backup_retention_period    = var.db_backup_retention_days
  copy_tags_to_snapshot      = true
  deletion_protection        = var.db_deletion_protection
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${var.name}-db-final"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  enabled_cloudwatch_logs_exports = ["postgresql"]
}
